"""The deck's drawing toolkit: colours, boxes, text, bullets, tables, pictures, cards, a missing-source notice."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from pptx.dml.color import RGBColor
from pptx.enum.shapes import MSO_SHAPE
from pptx.enum.text import MSO_ANCHOR, MSO_AUTO_SIZE, PP_ALIGN
from pptx.util import Emu, Inches, Pt

from slides.sources import (
    Missing,
)

WIDTH, HEIGHT = Inches(13.333), Inches(7.5)  # 16:9
MARGIN = Inches(0.5)
BODY_TOP = 1.35  # inches, where a slide's body starts below the title
DARK = RGBColor(0x1F, 0x2A, 0x37)
ACCENT = RGBColor(0xD6, 0x60, 0x4D)
GREY = RGBColor(0x6B, 0x72, 0x80)
RED = RGBColor(0xC0, 0x00, 0x00)
LIGHT = RGBColor(0xF3, 0xF4, 0xF6)
TITLE_ONLY, TITLE_SLIDE = 5, 0


# ----------------------------------------------------------------------------- formatting
def fmt(value, spec: str = "") -> str:
    """``value`` formatted with ``spec``; a ``Missing`` value prints as "source missing: <file>"."""
    return str(value) if isinstance(value, Missing) else format(value, spec)


# ----------------------------------------------------------------------------- drawing helpers
class Box:
    """A rectangle in inches, so that layouts read as numbers on a 13.33 x 7.5 grid."""

    def __init__(self, left: float, top: float, width: float, height: float):
        self.left, self.top, self.width, self.height = left, top, width, height

    def emu(self):
        return Inches(self.left), Inches(self.top), Inches(self.width), Inches(self.height)


def new_slide(deck, title: str):
    """A slide with its title in the title placeholder (so outlines and screen readers see it)."""
    slide = deck.slides.add_slide(deck.slide_layouts[TITLE_ONLY])
    shape = slide.shapes.title
    shape.left, shape.top, shape.width, shape.height = MARGIN, Inches(0.3), WIDTH - 2 * MARGIN, Inches(0.9)
    shape.text = title
    paragraph = shape.text_frame.paragraphs[0]
    paragraph.alignment = PP_ALIGN.LEFT
    paragraph.runs[0].font.size = Pt(30)
    paragraph.runs[0].font.bold = True
    paragraph.runs[0].font.color.rgb = DARK
    line = slide.shapes.add_shape(MSO_SHAPE.RECTANGLE, MARGIN, Inches(1.18), Inches(1.2), Inches(0.06))
    line.fill.solid()
    line.fill.fore_color.rgb = ACCENT
    line.line.fill.background()
    return slide


def text(slide, box: Box, lines, size: int = 18, color=DARK, bold: bool = False):
    """Paragraphs in a box; a line is a string, ``(string, level)`` for a sub-bullet, or a ``Missing``."""
    shape = slide.shapes.add_textbox(*box.emu())
    frame = shape.text_frame
    frame.word_wrap = True
    frame.auto_size = MSO_AUTO_SIZE.NONE  # the box stays where the layout put it
    frame.vertical_anchor = MSO_ANCHOR.TOP
    for index, line in enumerate(lines):
        level = 0
        if isinstance(line, tuple):
            line, level = line
        paragraph = frame.paragraphs[0] if index == 0 else frame.add_paragraph()
        paragraph.level = level
        paragraph.space_after = Pt(6)
        run = paragraph.add_run()
        run.text = str(line)
        run.font.size = Pt(size - 2 * level)
        run.font.bold = bold
        run.font.color.rgb = RED if isinstance(line, Missing) or "source missing:" in str(line) else color
    return shape


def bullets(slide, box: Box, lines, size: int = 18):
    """Like ``text`` with a bullet sign before each top-level line."""
    marked = [(f"• {line}" if not isinstance(line, tuple) else (f"– {line[0]}", line[1])) for line in lines]
    return text(slide, box, marked, size=size)


def missing_notice(slide, box: Box, missing: Missing):
    """A visible red frame saying which source file is missing, in place of a figure."""
    shape = slide.shapes.add_shape(MSO_SHAPE.RECTANGLE, *box.emu())
    shape.fill.solid()
    shape.fill.fore_color.rgb = LIGHT
    shape.line.color.rgb = RED
    frame = shape.text_frame
    frame.word_wrap = True
    run = frame.paragraphs[0].add_run()
    run.text = str(missing)
    run.font.size = Pt(18)
    run.font.bold = True
    run.font.color.rgb = RED
    return shape


def picture(slide, path, box: Box):
    """The image fitted (aspect kept) and centred in ``box``; a missing file gets the red notice instead."""
    if isinstance(path, Missing) or not Path(path).is_file():
        return missing_notice(slide, box, path if isinstance(path, Missing) else Missing(str(path)))
    with Image.open(path) as image:
        ratio = image.width / image.height
    width, height = box.width, box.width / ratio
    if height > box.height:
        width, height = box.height * ratio, box.height
    left = box.left + (box.width - width) / 2
    top = box.top + (box.height - height) / 2
    return slide.shapes.add_picture(str(path), Inches(left), Inches(top), Inches(width), Inches(height))


def table(slide, box: Box, rows, widths=None, size: int = 14, header: bool = True):
    """A table of strings; the first row is the header. Row height follows the font size."""
    shape = slide.shapes.add_table(len(rows), len(rows[0]), Inches(box.left), Inches(box.top),
                                   Inches(box.width), Emu(int(Pt(size * 2.0)) * len(rows)))
    grid = shape.table
    grid.first_row = header
    if widths:
        for column, width in zip(grid.columns, widths):
            column.width = Inches(width)
    for r, row in enumerate(rows):
        grid.rows[r].height = Emu(int(Pt(size * 2.0)))
        for c, value in enumerate(row):
            cell = grid.cell(r, c)
            cell.margin_top = cell.margin_bottom = Pt(2)
            cell.text = str(value)
            run = cell.text_frame.paragraphs[0].runs[0] if cell.text_frame.paragraphs[0].runs else None
            if run is not None:
                run.font.size = Pt(size)
                if "source missing:" in str(value):
                    run.font.color.rgb = RED
    return shape


def footer(slide, sources: str):
    """Where the slide's figures come from, in small grey type."""
    text(slide, Box(0.5, 7.0, 12.3, 0.4), [f"figures from: {sources}"], size=11, color=GREY)


def arrow(slide, left: float, top: float, width: float = 0.5):
    shape = slide.shapes.add_shape(MSO_SHAPE.RIGHT_ARROW, Inches(left), Inches(top), Inches(width), Inches(0.4))
    shape.fill.solid()
    shape.fill.fore_color.rgb = ACCENT
    shape.line.fill.background()
    return shape


def card(slide, box: Box, heading: str, lines, size: int = 14):
    """A light rectangle with a bold heading and short lines: one step of a flow."""
    shape = slide.shapes.add_shape(MSO_SHAPE.ROUNDED_RECTANGLE, *box.emu())
    shape.adjustments[0] = 0.06
    shape.fill.solid()
    shape.fill.fore_color.rgb = LIGHT
    shape.line.color.rgb = GREY
    frame = shape.text_frame
    frame.word_wrap = True
    frame.vertical_anchor = MSO_ANCHOR.TOP
    frame.margin_left = frame.margin_right = Inches(0.12)
    first = frame.paragraphs[0]
    first.alignment = PP_ALIGN.LEFT
    run = first.add_run()
    run.text = heading
    run.font.size, run.font.bold, run.font.color.rgb = Pt(size + 3), True, DARK
    for line in lines:
        paragraph = frame.add_paragraph()
        paragraph.alignment = PP_ALIGN.LEFT
        paragraph.space_before = Pt(4)
        run = paragraph.add_run()
        run.text = str(line)
        run.font.size = Pt(size)
        run.font.color.rgb = RED if "source missing:" in str(line) else DARK
    return shape
