"""Run the audit notebook (``litesr audit``): papermill into a temporary file, renamed onto the
output only when every assertion held.

A failed audit leaves no result that disagrees with it: the notebook as far as it ran is kept
beside the output as ``<out>.failed.ipynb`` for reading, and the files named as ``stale``
(the report that the audit vouches for) are removed, so that an old ``reports/all.pdf`` never
outlives the audit that found its numbers wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from litesr.atomic import atomic_path

log = logging.getLogger(__name__)


class AuditFailed(RuntimeError):
    """The audit notebook stopped at a failed assertion or an error."""


def run_audit(
    notebook: str | os.PathLike[str],
    out: str | os.PathLike[str],
    parameters: dict[str, Any],
    *,
    stale: Sequence[str | os.PathLike[str]] = (),
    kernel: str = "python3",
) -> None:
    """Execute ``notebook`` with ``parameters`` into ``out``; on failure remove ``stale``."""
    import papermill

    out = Path(out)
    failed = out.with_name(out.name.removesuffix(".ipynb") + ".failed.ipynb")
    failed.unlink(missing_ok=True)
    try:
        with atomic_path(out) as tmp:
            try:
                with warnings.catch_warnings():  # papermill warns of the temporary's .tmp
                    warnings.filterwarnings("ignore", message="The specified file .* does not end")
                    papermill.execute_notebook(
                        str(notebook),
                        str(tmp),
                        parameters=parameters,
                        kernel_name=kernel,
                        log_output=True,
                        progress_bar=False,
                    )
            except papermill.PapermillExecutionError as err:
                tmp.replace(failed)
                raise AuditFailed(
                    f"{notebook} failed: {err.ename}: {first_line(err.evalue)} "
                    f"(the notebook as far as it ran: {failed})"
                ) from None
    except BaseException:
        for path in map(Path, stale):
            if path.exists():
                path.unlink()
                log.warning("removed %s: the audit no longer vouches for it", path)
        raise


def first_line(text: str) -> str:
    """The first line of an error message (a failed assertion may list many problems)."""
    lines = str(text).strip().splitlines()
    more = f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else ""
    return (lines[0] if lines else "") + more


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("audit", help="run the audit notebook; a failed audit removes --stale")
    s.add_argument("--notebook", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument(
        "--parameters", type=json.loads, required=True, help="JSON: the notebook's parameters"
    )
    s.add_argument("--workers", type=int, default=1, help="processes for the recomputation")
    s.add_argument("--stale", type=Path, nargs="*", default=[], help="removed if the audit fails")
    s.set_defaults(
        func=lambda a: run_audit(
            a.notebook, a.out, {**a.parameters, "workers": a.workers}, stale=a.stale
        ),
    )
