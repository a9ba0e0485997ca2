"""identify: top-k answers per file, reasons for unreadable ones, exit codes, and a model that needs no cache."""

import json
import shutil

import pandas as pd
import pytest
from helpers import SAMPLE, persisted_rdds
from test_cli import cli

from fruits_lib import cli as fruits_cli
from fruits_lib.identify import Identification

pytest_plugins = ["helpers.classifier"]


def _main(*args) -> int:
    with pytest.raises(SystemExit) as stopped:
        fruits_cli.main(list(args))
    return stopped.value.code


def test_answer_lines():
    answer = Identification("a/kiwi.jpg", top=[("kiwi", 0.9), ("lime", 0.1)])
    assert answer.line() == "a/kiwi.jpg: kiwi 90.0%, lime 10.0%"
    assert answer.as_dict()["top"][0] == {"label": "kiwi", "probability": 0.9}
    assert answer.label == "kiwi" and answer.as_dict()["label"] == "kiwi"
    cautious = Identification("a/kiwi.jpg", top=[("kiwi", 0.9), ("lime", 0.1)], threshold=0.95)
    assert cautious.label is None and cautious.as_dict()["label"] is None
    assert cautious.line() == "a/kiwi.jpg: unknown (not confident enough: kiwi 90.0%, lime 10.0%)"
    assert Identification("x.txt", error="not a readable image").line() == "x.txt: not identified (not a readable image)"


@pytest.mark.slow  # a real process with an empty weights cache
def test_identify_cli_on_a_folder_with_no_weights_cache(trained, classifier_run, tmp_path):
    """In a fresh process whose weights cache is empty: the model's bundled network is all it needs."""
    folder = tmp_path / "photos"
    folder.mkdir()
    held_out = pd.read_csv(classifier_run / "model" / "test_predictions.csv")
    right = held_out[held_out["label"] == held_out["predicted"]].iloc[0]
    shutil.copy(right["path"].replace("file:", ""), folder / "photo.jpg")
    (folder / "notes.txt").write_text("not a photo")
    (folder / "empty.jpg").write_bytes(b"")
    result = cli("identify", "--model", str(classifier_run / "model"), str(folder), "--top", "2", "--json",
                 "--master", "local[1]", env={"FRUITS_CACHE_DIR": str(tmp_path / "empty-cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    answers = {row["path"].rsplit("/", 1)[-1]: row for row in map(json.loads, result.stdout.splitlines())}
    assert set(answers) == {"photo.jpg", "notes.txt", "empty.jpg"}
    photo = answers["photo.jpg"]
    assert photo["error"] is None and len(photo["top"]) == 2 and photo["top"][0]["label"] == right["label"]
    assert photo["top"][0]["probability"] == pytest.approx(right["probability"], abs=1e-4)
    assert "not a readable image" in answers["notes.txt"]["error"]
    assert answers["empty.jpg"]["error"] == "empty file (0 bytes)"
    assert "Traceback" not in result.stderr and "1 identified, 2 not identified" in result.stderr
    assert not (tmp_path / "empty-cache" / "tflite").exists()  # the bundled TFLite network: no conversion


def test_identify_exit_codes(spark, trained, classifier_run, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a photo")
    assert _main("identify", "--model", str(classifier_run / "model"), str(tmp_path / "notes.txt")) == 1
    assert "no image could be identified" in capsys.readouterr().err
    assert _main("identify", "--model", str(tmp_path / "nothing"), str(SAMPLE / "apple")) == 2
    assert "no trained model at" in capsys.readouterr().err
    assert _main("identify", "--model", str(classifier_run / "model"), str(tmp_path / "missing.jpg")) == 2
    assert "not found" in capsys.readouterr().err

    altered = tmp_path / "altered"
    shutil.copytree(classifier_run / "model", altered)
    manifest = next((altered / "stages").glob("0_*")) / "network" / "manifest.json"
    values = json.loads(manifest.read_text())
    values["file_sha256"] = "0" * 64
    manifest.write_text(json.dumps(values))
    assert _main("identify", "--model", str(altered), str(SAMPLE / "apple")) == 2
    err = capsys.readouterr().err
    assert "refusing model" in err and "altered file" in err and len(err.strip().splitlines()) == 1


def test_identify_releases_its_rows_when_the_reader_stops_early(spark, trained, classifier_run):
    from fruits_lib.identify import identify, load_model

    before = persisted_rdds(spark)
    answers = identify(spark, load_model(spark, str(classifier_run / "model")), [str(SAMPLE / "apple")])
    assert next(answers).error is None and persisted_rdds(spark) != before  # held while answers stream
    answers.close()  # the reader stops after one answer
    assert persisted_rdds(spark) == before, "identify left its rows persisted"


@pytest.mark.parametrize("command", ["run", "train", "identify", "export"])
def test_every_command_help_has_an_example(command, capsys):
    assert _main(command, "--help") == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "exit codes" in text
