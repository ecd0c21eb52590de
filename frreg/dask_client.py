"""Connecting to a Dask cluster: what ``frreg-corpus --scheduler`` and ``frreg-sweep
--scheduler`` share. A leaf: Dask's ``distributed`` (the ``frreg[cluster]`` extra) is
imported only when a scheduler is given."""

from __future__ import annotations

from typing import Any, Final

from frreg.errors import InputError

#: What ``pip`` installs for the cluster path.
CLUSTER_EXTRA: Final = "pip install 'frreg[cluster]'"
#: How long to wait for the scheduler to answer before giving up (seconds).
CONNECT_TIMEOUT_S: Final = 10


def connect(address: str) -> Any:
    """A ``distributed.Client`` on ``address``; one-line :class:`InputError` (exit 2) when
    the extra is missing or no scheduler answers within :data:`CONNECT_TIMEOUT_S`."""
    try:
        import distributed
    except ImportError:
        raise InputError(
            f"--scheduler {address}: needs Dask's distributed, which the cluster extra "
            f"provides: {CLUSTER_EXTRA}"
        ) from None
    try:
        return distributed.Client(  # type: ignore[no-untyped-call]
            address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False
        )
    except TypeError as exc:  # distributed's way of saying TLS is not configured
        raise InputError(
            f"--scheduler {address}: Dask could not open a TLS connection ({exc}); set the "
            "client's certificate in Dask's config (distributed.comm.tls.ca-file, "
            "distributed.comm.tls.client.cert/key; docs/corpus.md)"
        ) from None
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(
            f"--scheduler {address}: no Dask scheduler answered within {CONNECT_TIMEOUT_S} s "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'})"
        ) from None
