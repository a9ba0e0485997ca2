"""The app's model slide: studio-only training against the recipe (scenes, fine-tuning), on the real-world check."""

from __future__ import annotations

from slides.draw import BODY_TOP, GREY, Box, fmt, footer, missing_notice, new_slide, picture, table, text
from slides.sources import Missing, Sources, field, first_missing

REPORTS = "docs/app-eval/<model>/report.json"


def _pct(value) -> str:
    return value if isinstance(value, Missing) else f"{value:.0%}"


def app_slide(deck, src: Sources):
    slide = new_slide(deck, "The app's model: people's photos, and \"unknown\"")
    before, after, open_set = src.app_before, src.app_after, src.app_open
    missing = first_missing(before, after)
    if missing is not None:
        missing_notice(slide, Box(0.5, BODY_TOP, 7.6, 1.2), missing)
    else:
        rows = [["real-world check", "studio only", "scenes + tuning"]]
        for name, path in (("known fruits, named right (studio photo)", "per_condition.studio.accuracy"),
                           ("known fruits, named right (scenes)", "known_without_studio.accuracy"),
                           ("  close-up", "per_condition.close-up.accuracy"),
                           ("  several fruits", "per_condition.several.accuracy"),
                           ("  occluded", "per_condition.occluded.accuracy"),
                           ("  grayscale", "per_condition.grayscale.accuracy"),
                           ("known fruits answered unknown", "known_without_studio.abstained"),
                           ("mango, raspberry answered unknown", "unknown.abstained")):
            rows.append([name, _pct(field(before, path, "studio-only report")),
                         _pct(field(after, path, "app report"))])
        table(slide, Box(0.5, BODY_TOP, 7.6, 3.6), rows, widths=[4.4, 1.6, 1.6], size=13)
    studio = field(src.app_metrics, "test_studio.top1", "app metrics")
    threshold = field(src.app_metrics, "abstain.threshold", "app metrics")
    refused = field(src.app_metrics, "abstain.open_set.refused", "app metrics")
    named = field(src.app_metrics, "test_studio.accuracy_abstention_as_error", "app metrics")
    similarity = field(src.app_metrics, "abstain.studio_gate.similarity_threshold", "app metrics")
    text(slide, Box(0.5, BODY_TOP + 3.8, 7.6, 1.6), [
        f"Held-out studio photos (split by fruit): top-1 {fmt(studio, '.1%')}, named right {fmt(named, '.1%')}. Unknown: "
        f"studio-like photos whose nearest studio photo learnt is under {fmt(similarity, '.2f')}, others under "
        f"probability {fmt(threshold, '.2f')} (refuses {_pct(refused)} of the fruits left out in calibration).",
        f"Fruits left out of training (open-set model): {_pct(field(open_set, 'unknown.abstained', 'open-set'))} "
        "answered unknown.",
        "Scenes: fruit cut out of its white sheet, composited on textures and PyPI-shipped photos, on Spark; "
        "MobileNetV2's last three blocks retrained on them.",
    ], size=13, color=GREY)
    picture(slide, src.app_confusion, Box(8.3, BODY_TOP, 4.6, 4.6))
    footer(slide, f"{REPORTS} (studio-only, app, open-set); models/app/metrics.json as docs/app-eval/app/metrics.json")
    return slide
