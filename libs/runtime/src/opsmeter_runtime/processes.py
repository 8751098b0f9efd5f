"""Facts about other processes of this host."""

import os


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user counts: it is alive, only not ours to signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
