"""What a person sees in the terminal: the command's name, no third-party noise, progress in images.

The noise test starts a real ``python -m fruits_lib run`` on data_sample/ (the JVM's and the Python
workers' stderr are file descriptors of that process, out of reach of an in-process capture); its
stderr is a pipe, not a terminal, so the same run also shows the one progress line per stage.
"""

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, SAMPLE, cli

from fruits_lib.cli import DESCRIPTION, build_parser
from fruits_lib.support import logs
from fruits_lib.support.progress import Progress, image_counter, progress, spark_images

COMMANDS = ("run", "train", "identify", "export", "make-sample", "fetch-weights", "app-model", "make-eval", "evaluate")
# Our own lines on stderr during a successful run: the progress summary of each long stage.
OURS = re.compile(r"featurize: \d+/\d+ images in [\d.]+ s(, [\d.]+ images/s)?")


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as a tmux pane does."""

    def isatty(self):
        return True


def test_usage_names_the_command_as_typed():
    assert build_parser().format_usage().startswith("usage: fruits ")
    assert build_parser("python -m fruits_lib").format_usage().startswith("usage: python -m fruits_lib ")
    console_script = Path(sys.executable).parent / "fruits"  # installed by make setup
    for prog, command in (("fruits", [str(console_script)]), ("python -m fruits_lib", [sys.executable, "-m", "fruits_lib"])):
        shown = subprocess.run([*command, "identify", "--help"], capture_output=True, text=True, cwd=ROOT)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith(f"usage: {prog} identify "), shown.stdout[:200]
        assert f"\n  {prog} identify --model models/fruits" in shown.stdout  # examples in the command's own name


def test_help_describes_the_tool_in_one_line_and_every_command_keeps_examples():
    parser = build_parser()
    assert "\n" not in DESCRIPTION and len(DESCRIPTION) <= 80 and DESCRIPTION in parser.format_help()
    assert "Command line." not in parser.format_help()
    commands = parser._subparsers._group_actions[0].choices  # argparse has no public accessor
    assert set(commands) == set(COMMANDS)
    for name, command in commands.items():
        shown = command.format_help()
        assert re.search(r"^examples?:", shown, re.M) and re.search(rf"^(examples?:)?\s+fruits {name} ", shown, re.M), name


def test_spark_commands_offer_verbose_and_the_spark_ui():
    for name in ("run", "train", "identify", "export", "app-model", "evaluate"):
        args = build_parser().parse_args([name, *_required(name), "--verbose", "--spark-ui"])
        assert args.verbose and args.spark_ui, name
        assert not build_parser().parse_args([name, *_required(name)]).verbose


def _required(name):
    return {"run": ["--input", "in", "--output", "out"], "train": ["--features", "out", "--model", "m"],
            "identify": ["--model", "m", "photo.jpg"], "export": ["--model", "m", "--out", "f.tflite"],
            "app-model": ["--input", "in", "--model", "m"], "evaluate": ["--model", "m", "photos"]}[name]


@pytest.fixture(scope="module")
def sample_process(tmp_path_factory):
    """``python -m fruits_lib run`` on data_sample/ in a process of its own, as a user runs it."""
    output = tmp_path_factory.mktemp("terminal") / "out"
    result = cli("run", "--input", str(SAMPLE), "--output", str(output), "--weights", "offline",
                 env={"FRUITS_LOG": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_a_run_prints_no_third_party_line(sample_process):
    """No Spark/Hadoop start-up line, no log4j line, no LiteRT/TensorFlow INFO: stderr holds our lines only."""
    others = [line for line in sample_process.stderr.splitlines() if line.strip() and not OURS.fullmatch(line)]
    assert others == [], "\n".join(others)
    assert "Fruits! run" in sample_process.stdout and "[3/5] featurizing 160 images" in sample_process.stdout


def test_a_run_not_on_a_terminal_prints_one_progress_line_per_stage(sample_process):
    lines = [line for line in sample_process.stderr.splitlines() if line.startswith("featurize:")]
    assert len(lines) == 1 and lines[0].startswith("featurize: 160/160 images in "), sample_process.stderr


def test_verbose_keeps_spark_defaults_and_every_native_line(monkeypatch):
    monkeypatch.setenv(logs.LOG_ENV, "")
    assert "log4j2.configurationFile" in logs.driver_java_options() and logs.LOG4J2_CONFIG.is_file()
    monkeypatch.setenv(logs.LOG_ENV, "debug")
    assert logs.driver_java_options() == ""


NATIVE = [b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
          b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
          b"W0000 00:00:1796581232.483430    3778 tf_tfl_flatbuffer_helpers.cc:365] Ignored output_format.\n",
          b"I0000 00:00:1796581232.486792    3778 mlir_graph_optimization_pass.cc:425] MLIR V1 pass is not enabled\n",
          b"fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, output_inference_type: FLOAT32\n",
          b"W0000 00:00:1796581232.483430    3778 other.cc:12] a real warning\n",
          b"ERROR: a real error\n"]


@pytest.mark.parametrize("level, kept", [("", NATIVE[-2:]), ("debug", NATIVE)])
def test_native_info_lines_are_dropped_and_warnings_kept(level, kept, tmp_path):
    """In a child process: the guard works on file descriptor 2, which pytest's capture replaces here."""
    code = ("import os\nfrom fruits_lib.support import logs\nwith logs.native_noise_silenced():\n"
            + "".join(f"    os.write(2, {line!r})\n" for line in NATIVE))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT,
                          env=dict(os.environ, FRUITS_LOG=level))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines(keepends=True) == kept


def test_progress_not_on_a_terminal_is_one_line():
    stream = io.StringIO()
    with progress("augment", 50, stream=stream) as bar:
        for _ in range(5):
            bar.update(10)
    assert re.fullmatch(r"augment: 50/50 images in [\d.]+ s, [\d.]+ images/s\n", stream.getvalue())


def test_a_long_stage_not_on_a_terminal_prints_a_line_as_it_goes():
    """A log file shows a long stage alive: a line per ``every`` seconds while the count moves, then the summary."""
    stream = io.StringIO()
    with progress("augment + featurize", 50, stream=stream, every=0.05) as bar:
        bar.update(10)  # less than every seconds since the start: no line yet
        time.sleep(0.1)
        bar.update(10)
        bar.set(20)  # the count did not move: no line
        time.sleep(0.1)
        bar.update(30)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert re.fullmatch(r"augment \+ featurize: 20/50 images, [\d.]+ images/s, about \d+ min left", lines[0])
    assert re.fullmatch(r"augment \+ featurize: 50/50 images, [\d.]+ images/s", lines[1])
    assert re.fullmatch(r"augment \+ featurize: 50/50 images in [\d.]+ s, [\d.]+ images/s", lines[2])


def test_progress_on_a_terminal_draws_done_total_rate_and_eta():
    stream = Terminal()
    bar = Progress("featurize", 100, stream=stream)
    bar.update(40)
    time.sleep(0.3)
    bar.set(60)
    drawn = stream.getvalue()
    assert "60/100" in drawn and "images/s" in drawn and re.search(r"<\d\d:\d\d", drawn), drawn  # ETA
    bar.close()


def test_spark_progress_counts_images_as_tasks_end(spark):
    """The accumulator's count reaches the driver at each task's end: the bar moves before the job ends."""
    counter = image_counter(spark)
    stream = Terminal()

    def work(index, rows):
        time.sleep(0.5 + index * 0.8)  # tasks end one after the other
        counter.add(len(list(rows)))
        return []

    with spark_images(spark, "featurize", 40, stream=stream, every=0.2):
        spark.sparkContext.parallelize(range(40), 4).mapPartitionsWithIndex(work).count()
    counts = [int(n) for n in re.findall(r"(\d+)/40", stream.getvalue())]
    assert counts[-1] == 40 and any(0 < n < 40 for n in counts), stream.getvalue()


def test_featurize_tasks_are_small_only_when_a_person_watches():
    """The bar's count moves as tasks end: at most 128 images per task on a terminal, few big tasks otherwise."""
    from fruits_lib.pipeline import partitions_for

    assert partitions_for(1962, 2) == 4 and partitions_for(160, 2) == 4 and partitions_for(10, 2) == 1
    assert partitions_for(1962, 2, live=True) == 16 and partitions_for(160, 2, live=True) == 4
    assert partitions_for(50_000, 2, live=True) == 391 and partitions_for(1, 2, live=True) == 1


def test_the_jvm_is_forked_once_fork_handler_modules_are_imported():
    """No "Exception ignored ... release unlocked lock" at start-up: a module that registers fork handlers
    (concurrent.futures.thread) imported by the chain's import thread while the JVM is forked broke them."""
    code = ("import sys\nimport fruits_lib.support.session as session\nfrom fruits_lib import cli\n"
            "session.get_spark = lambda *a, **k: print('concurrent.futures.thread' in sys.modules) or sys.exit(0)\n"
            "cli._spark_beside([])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stdout + done.stderr


def test_the_driver_jvm_still_logs_real_warnings(spark):
    """Silenced by name, not by level: the root logger stays at WARN (a lost task, a failed write reach the
    user); only the named noise (native Hadoop, native BLAS) is at ERROR. Read from the session's JVM."""
    log4j = spark.sparkContext._jvm.org.apache.logging.log4j.LogManager  # log4j2's public API

    def level(name):
        return log4j.getLogger(name).getLevel().toString()

    assert level("org.apache.spark.scheduler.TaskSetManager") == "WARN"
    assert level("org.apache.hadoop.fs.FileSystem") == "WARN"
    assert level("org.apache.hadoop.util.NativeCodeLoader") == "ERROR"
    assert level("dev.ludovic.netlib.blas.InstanceBuilder") == "ERROR"


@pytest.mark.parametrize("logger, message, shown", [
    ("org.apache.spark.storage.BlockManager", "Block rdd_333_0 already exists on this machine; not re-adding it", False),
    ("org.apache.spark.storage.BlockManager", "Failed to fetch block rdd_3_1, and will not retry", True),
    ("org.apache.spark.scheduler.DAGScheduler", "Broadcasting large task binary with size 1234.5 KiB", False),
    ("org.apache.spark.scheduler.DAGScheduler", "Stage 3 failed", True),
])
def test_named_spark_notes_are_filtered_and_other_warnings_of_their_loggers_kept(spark, logger, message, shown):
    """The shipped log4j2 file's filters, asked through log4j2's public API in the session's JVM."""
    jvm = spark.sparkContext._jvm
    config = jvm.org.apache.logging.log4j.LogManager.getContext(False).getConfiguration().getLoggerConfig(logger)
    assert config.getName() == logger, "the logger has no configuration of its own: its filter is gone"
    event = (jvm.org.apache.logging.log4j.core.impl.Log4jLogEvent.newBuilder().setLoggerName(logger)
             .setLevel(jvm.org.apache.logging.log4j.Level.WARN)
             .setMessage(jvm.org.apache.logging.log4j.message.SimpleMessage(message)).build())
    assert config.isFiltered(event) is not shown
    assert config.getLevel().toString() == "WARN"  # the logger's other warnings still reach the user
