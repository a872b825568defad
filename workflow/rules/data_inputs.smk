"""What each set is made from: the inputs of `prepare` in data.smk.

Kept apart from the rules, as Snakemake's linter asks. Plain Python: the workflow does not
import litesr, since with --use-conda Snakemake itself may run without it.
"""

import os
import string

# The image files litesr reads from a folder (= litesr.data.images.IMAGE_EXTENSIONS; a test
# keeps the two equal).
FOLDER_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def folder_of_set(where, scale):
    """A folder set's path, `{scale}` replaced; any other brace field is a clear error."""
    hint = "only {scale} is replaced; write {{ and }} for literal braces"
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(where) if f is not None]
    except ValueError as err:
        raise ValueError(f"data folder {where!r}: {err} ({hint})") from None
    bad = sorted({f"{{{f}}}" for f in fields if f != "scale"})
    if bad:
        raise ValueError(f"data folder {where!r} has brace field(s) {', '.join(bad)}; {hint}")
    try:
        return where.format(scale=scale)
    except (ValueError, KeyError, IndexError, AttributeError) as err:
        raise ValueError(f"data folder {where!r}: {type(err).__name__}: {err} ({hint})") from None


def folder_images(where, scale):
    """The image files of a folder set, listed when the DAG is built, so that an image added,
    removed, replaced or edited makes `prepare` run again. A broken symbolic link is listed
    too (Snakemake then reports it as a missing input). A folder with no images is returned
    itself, and a missing folder gives no input: `litesr prepare` then stops naming it (so a
    dry run still works where the data is not, e.g. on a login node before a copy)."""
    folder = folder_of_set(where, scale)
    if not os.path.isdir(folder):
        return []
    found = sorted(
        entry.path
        for entry in os.scandir(folder)
        if not entry.name.startswith(".")
        and os.path.splitext(entry.name)[1].lower() in FOLDER_IMAGE_SUFFIXES
        and not entry.is_dir()
    )
    return found or [folder]


def prepare_input(wildcards):
    """What a set is made from: its downloaded dataset, or the images of its folder."""
    if DATA["source"] == "download":
        return download_input(wildcards)
    if DATA["source"] == "folder":
        return folder_images(SETS[wildcards.set], wildcards.scale)
    return []
