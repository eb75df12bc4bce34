"""make_records' shards written by an Apache Beam pipeline (`make_records --runner=beam`),
and siamese-align's photos aligned by one (run_tasks, `siamese-align --runner=beam`).

The same plan as the single-machine writer (record_writer.plan_shards: identities
dealt to shards in whole blocks), the same shard writer (record_writer.write_shard:
the same readers, photo checks, skip rules and record schema) and the same
manifest: Beam only decides where and when each shard is written. The pipeline
is a DoFn per shard:

    Create(shard tasks) | Reshuffle | Map(write_shard)

rather than Beam's file sinks (WriteToTFRecord), because the pair graph needs
the planner's exact layout (each shard holds whole identity blocks, records in
plan order), which a sink that shards by itself does not keep. write_shard writes
to a temporary name and renames when complete, and a shard's bytes depend only on
the plan, so a failed or retried bundle rewrites the same shard and never leaves
one that looks complete. Each shard's manifest entry is written beside it
(the progress folder) and the driver assembles the manifest from those after the
pipeline has run, as the single-machine writer does.

The same pipeline runs on Dataflow, Flink or Spark with their pipeline options
(see the README); the output folder must then be one the workers can all write.
"""
import shlex


def available():
    """True when Apache Beam is installed (pip install '.[beam]')."""
    import importlib.util

    return importlib.util.find_spec("apache_beam") is not None


def pipeline_options(beam_options):
    """PipelineOptions from a command-line string such as
    "--runner=DirectRunner --direct_num_workers=2 --direct_running_mode=multi_processing"."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(shlex.split(beam_options or "--runner=DirectRunner"))


def _pipeline(beam_options):
    import apache_beam as beam

    from siamese_graph.errors import ArgumentError

    try:
        return beam.Pipeline(options=pipeline_options(beam_options))
    except (ValueError, TypeError, SystemExit) as e:  # argparse inside Beam exits on a bad option
        raise ArgumentError("beam_options", beam_options, "not usable Beam pipeline options (%s)"
                            % (str(e).splitlines()[0][:150] if str(e) else "see above"))


def write_shards(tasks, write_shard, beam_options=None):
    """Runs write_shard on every task in a Beam pipeline; returns when all are written.

    Args:
      tasks: record_writer's shard tasks (picklable tuples).
      write_shard: the function writing one shard (record_writer.write_shard).
      beam_options: Beam pipeline options as a command-line string.
    """
    import apache_beam as beam

    with _pipeline(beam_options) as p:
        (p
         | "Shards" >> beam.Create(tasks)
         | "Spread" >> beam.Reshuffle()
         | "Write" >> beam.Map(lambda task: write_shard(task)["file"]))


def run_tasks(tasks, fn, results_dir, beam_options=None, setup=None):
    """Runs fn on every task in a Beam pipeline (siamese-align --runner=beam: one photo a
    task); returns fn's results in task order.

    Args:
      tasks: picklable tasks.
      fn: task -> a JSON-ready result; it writes its own outputs (under temporary
        names, renamed when complete).
      results_dir: a folder the workers can all write: each result is written there
        as <task index>.json, and the driver reads them back once the pipeline has run.
      setup: called once a worker before its first task (loads a model).
    """
    import json
    import os

    import apache_beam as beam

    from siamese_graph import fileio

    class _Run(beam.DoFn):
        def setup(self):
            if setup is not None:
                setup()

        def process(self, item):
            k, task = item
            with fileio.atomic_write(os.path.join(results_dir, "%d.json" % k), "w") as f:
                json.dump(fn(task), f)
            yield k

    os.makedirs(results_dir, exist_ok=True)
    with _pipeline(beam_options) as p:
        (p
         | "Tasks" >> beam.Create(list(enumerate(tasks)))
         | "Spread" >> beam.Reshuffle()
         | "Run" >> beam.ParDo(_Run()))
    out = []
    for k in range(len(tasks)):
        with open(os.path.join(results_dir, "%d.json" % k)) as f:
            out.append(json.load(f))
    return out
