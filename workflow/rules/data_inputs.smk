"""What each set is made from: the inputs of `prepare` in data.smk (kept apart from the rules,
as Snakemake's linter asks). The folder rules are litesr's own (litesr.data)."""

from litesr.data.images import IMAGE_EXTENSIONS
from litesr.data.sources import folder_path


def folder_images(where, scale):
    """The image files of a folder set, listed when the DAG is built, so that an image added,
    removed, replaced or edited makes `prepare` run again. A broken symbolic link is listed
    too (Snakemake then reports it as a missing input). A folder with no images is returned
    itself, and a missing folder gives no input: `litesr prepare` then stops naming it (so a
    dry run still works where the data is not, e.g. on a login node before a copy)."""
    folder = folder_path(where, scale)
    if not folder.is_dir():
        return []
    found = sorted(
        entry.path
        for entry in os.scandir(folder)
        if not entry.name.startswith(".")
        and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS
        and not entry.is_dir()
    )
    return found or [str(folder)]


def prepare_input(wildcards):
    """What a set is made from: its downloaded dataset, or the images of its folder."""
    if DATA["source"] == "download":
        return download_input(wildcards)
    if DATA["source"] == "folder":
        return folder_images(SETS[wildcards.set], wildcards.scale)
    return []
