"""The end of a sweep: its task records merged, in a fixed order, into the run folders
``DIR/<model>/<text>/ctx<N>/`` (byte for byte ``attnspec analyze``'s files), ``DIR/heads.csv`` (every
run's rows with model, text and ctx in front) and the paper table."""
from __future__ import annotations

from pathlib import Path

from .options import Options, request
from .plan import read_task_file, write_atomically


def merge(runs: list, out: Path, options: Options, threads: int) -> None:
    """The run folders, DIR/heads.csv and the table, from the task files, in a fixed order."""
    from .. import _core
    from ..runfolder import RunFolder
    from ..table import load_runs, write_table

    header, lines = None, []
    for run in runs:
        rows = []
        for task in run.tasks:
            rows.extend(tuple(r) for r in read_task_file(task)["rows"])
        dest = out / run.rel
        _core.write_run(request(run, options, for_workers=False, threads=threads, out=dest), rows)
        text = RunFolder(dest).heads_text()
        first_line, _, body = text.partition("\n")
        header = header or "model,text,ctx," + first_line
        prefix = f"{run.model.name},{run.input.name},{run.ctx},"
        lines.extend(prefix + line for line in body.splitlines())
    write_atomically(out / "heads.csv", header + "\n" + "".join(line + "\n" for line in lines))
    loaded = load_runs([out / run.rel for run in runs])
    for run, r in zip(runs, loaded):  # names and folders as the sweep knows them, relative to DIR
        r.dir, r.model_name = Path(run.rel), run.model.name
    write_table(None, out, runs=loaded)
