"""Planning a run: what was given (a folder, or files and folders), which outputs each input goes to, and
which inputs are skipped and why -- before anything is read or written. Inputs are never written: OUT may not
be IN, inside IN, or contain IN; an output path whose folder or file is a link pointing outside OUT is refused;
links are not followed out of IN unless ``follow_symlinks``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from denoise.errors import DenoiseError
from denoise.formats import OUTPUT_SUFFIXES, RAW_OUTPUT_SUFFIX, is_input, is_raw, list_inputs
from denoise.job.rerun import EarlierOutputs


@dataclass
class Job:
    source: Path
    output: Path | None  # None: nothing to write (skipped before reading)
    reason: str | None = None  # why it is skipped, if it is
    redo: str = ""  # the output exists but was made with other settings: what changed (job.rerun)


def check_folders(input_dir: Path, output_dir: Path) -> tuple[Path, Path]:
    """Resolve both folders and refuse any layout where an output could land on an input."""
    if not input_dir.exists():
        raise DenoiseError(f"input folder {input_dir} does not exist")
    if not input_dir.is_dir():
        raise DenoiseError(f"input {input_dir} is not a folder; give a folder of images")
    src, dst = input_dir.resolve(), output_dir.resolve()
    if src == dst:
        raise DenoiseError(f"output folder {output_dir} is the input folder; choose a separate output folder")
    if src in dst.parents:
        raise DenoiseError(f"output folder {output_dir} is inside the input folder; choose a folder outside it")
    if dst in src.parents:
        raise DenoiseError(f"input folder {input_dir} is inside the output folder; choose a folder outside it")
    if dst.exists() and not dst.is_dir():
        raise DenoiseError(f"output {output_dir} exists and is not a folder")
    return src, dst


def output_path_for(source: Path, src: Path, dst: Path, fmt: str | None) -> Path:
    """OUT/the same relative path, with ``fmt``'s suffix if given; a camera RAW's output is a TIFF without one."""
    out = dst / source.relative_to(src)
    if fmt:
        return out.with_suffix("." + fmt.lower().lstrip("."))
    return out.with_suffix(RAW_OUTPUT_SUFFIX) if is_raw(source) else out


def safe_output(path: Path, dst: Path) -> bool:
    """False when writing ``path`` would go through a link (the file or a folder) leading outside OUT."""
    if path.is_symlink():
        return False
    parent = path.parent.resolve()
    return parent == dst or dst in parent.parents


def plan_file(path: Path, out: Path, dst: Path, overwrite: bool, earlier: EarlierOutputs | None = None) -> Job:
    """One input's job: skipped (not an image, an output through a link out of ``dst``, an output already
    there and made with this run's settings, or with settings unknown), or to do (``redo`` says why an
    existing output is made again). A camera RAW without the `raw` extra stops the plan with the line that says
    which extra to install: nothing is written, rather than every RAW failing one by one."""
    if not is_input(path):
        return Job(path, None, f"not an image file type ({path.suffix or 'no extension'})")
    if is_raw(path):
        from denoise.raw_files import rawpy_module

        rawpy_module()
    if not safe_output(out, dst):
        return Job(path, None, f"output {out} would be written through a link leading outside the output folder")
    if out.exists() and not overwrite:
        changed = earlier.changed(out) if earlier else ""
        if changed:
            return Job(path, out, redo=changed)
        return Job(path, out, "output already exists (use --overwrite to redo)")
    return Job(path, out)


def plan_jobs(src: Path, dst: Path, pattern: str, follow_symlinks: bool, overwrite: bool, fmt: str | None,
              shard=None, earlier: EarlierOutputs | None = None) -> list[Job]:
    return [plan_file(path, output_path_for(path, src, dst, fmt), dst, overwrite, earlier)
            for path in list_inputs(src, pattern, follow_symlinks)
            if shard is None or shard.owns(path.relative_to(src).as_posix())]


@dataclass
class Inputs:
    """What a run was given: one folder (mirrored into OUT, as always), or files and folders together --
    each file goes to OUT/its name (or, for one file and an OUT with an image suffix, to OUT itself), each
    folder to OUT/its name/... . ``dst`` is the folder written into and locked."""

    paths: list[Path]
    dst: Path
    target: Path | None = None  # the output file, for one input file written to a named file

    @property
    def single_folder(self) -> Path | None:
        return self.paths[0] if len(self.paths) == 1 and self.paths[0].is_dir() else None


def check_inputs(inputs, output: Path) -> Inputs:
    """Resolve the inputs and the output and refuse anything that could write over an input."""
    paths = [Path(p) for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)]
    if not paths:
        raise DenoiseError("no input given: name a folder of images, or image files")
    if len(paths) == 1 and not paths[0].is_file():
        src, dst = check_folders(paths[0], Path(output))
        return Inputs([src], dst)
    output = Path(output)
    resolved = []
    for path in paths:
        if not path.exists():
            raise DenoiseError(f"input {path} does not exist")
        resolved.append(path.resolve())
    target = None
    if len(paths) == 1 and output.suffix.lower() in OUTPUT_SUFFIXES and not output.is_dir():
        target, dst = output.resolve(), output.resolve().parent
    else:
        dst = output.resolve()
        if dst.exists() and not dst.is_dir():
            raise DenoiseError(f"output {output} exists and is not a folder; with several inputs, name a folder")
    for path in resolved:
        if path.is_dir():
            check_folders(path, dst / path.name if target is None else dst)
            if path == dst or dst in path.parents:
                raise DenoiseError(f"input folder {path} is inside the output folder; choose a folder outside it")
        elif (target or dst / path.name) == path:
            raise DenoiseError(f"the output for {path} would be the input itself; choose another output")
    return Inputs(resolved, dst, target)


def plan_inputs(given: Inputs, pattern: str, follow_symlinks: bool, overwrite: bool, fmt: str | None,
                shard=None, earlier: EarlierOutputs | None = None) -> list[Job]:
    """The jobs for what the run was given (see Inputs); an output name two inputs would share (two files given,
    ``--format``, or a RAW beside a TIFF of the same name: IMG_1.NEF and IMG_1.tif both make IMG_1.tif) is done
    once, for the first of them, and the other is skipped with a reason."""
    if given.single_folder:
        return one_output_each(plan_jobs(given.single_folder, given.dst, pattern, follow_symlinks, overwrite, fmt,
                                         shard, earlier))
    jobs = []
    for path in given.paths:
        if path.is_dir():
            planned = plan_jobs(path, given.dst / path.name, pattern, follow_symlinks, overwrite, fmt, shard, earlier)
            for job in planned:  # outputs lie under OUT/<folder name>; the link check is against OUT
                if job.output is not None and not job.reason and not safe_output(job.output, given.dst):
                    job.output, job.reason = None, "output would be written through a link leading outside the output folder"
        elif shard is not None and not shard.owns(path.name):
            continue
        else:
            planned = [plan_file(path, given.target or output_path_for(path, path.parent, given.dst, fmt), given.dst,
                                 overwrite, earlier)]
        jobs.extend(planned)
    return one_output_each(jobs)


def one_output_each(jobs: list[Job]) -> list[Job]:
    """Skip, with a reason, each job whose output an earlier job has: one output is never written twice."""
    taken = set()
    for job in jobs:
        if job.output is not None and job.output in taken:
            job.output, job.reason = None, f"another input has the same output name {job.output}"
        if job.output is not None:
            taken.add(job.output)
    return jobs


def nothing_found_note(given, pattern: str, follow_symlinks: bool, shard=None) -> str:
    """What to tell a user whose run found no inputs (an empty folder, a --glob that matches nothing, a
    shard that owns none): an exit code 0 alone would hide the mistake. ``given``: a folder or Inputs."""
    if isinstance(given, Inputs) and not given.single_folder:
        return f"nothing to do: none of the {len(given.paths)} inputs given is for this run" + (
            f" (shard {shard.suffix} owns none of them)" if shard is not None else "")
    src = given.single_folder if isinstance(given, Inputs) else given
    found = len(list_inputs(src, pattern, follow_symlinks))
    if found and shard is not None:
        return f"nothing to do: shard {shard.suffix} owns none of the {found} files under {src}"
    where = f"under {src}" + (f" match --glob {pattern!r}" if pattern != "*" else "")
    links = "" if follow_symlinks else "; links leading outside it need --follow-symlinks"
    return f"nothing to do: no files {where} (hidden files are left out{links})"
