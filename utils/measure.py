"""Run a command as a child process and measure its own peak RSS (for the benchmark and the memory tests).

`os.wait4` reports the rusage of exactly the child it reaps, unlike
RUSAGE_CHILDREN, which keeps the largest of every child ever waited for.
"""

import os
import subprocess
import threading


def run_measured(command, env, cwd, timeout=None):
    """(CompletedProcess with text output, the child's peak RSS in MB); the child is killed after `timeout` s."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    chunks = {}
    readers = [
        threading.Thread(target=lambda name=name, pipe=pipe: chunks.__setitem__(name, pipe.read()))
        for name, pipe in (("out", process.stdout), ("err", process.stderr))
    ]
    for reader in readers:
        reader.start()
    killer = threading.Timer(timeout, process.kill) if timeout else None
    if killer:
        killer.start()
    try:
        # Reading the pipes in threads while waiting; wait4 reaps the child and returns its own rusage.
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        if killer:
            killer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    process.stdout.close()
    process.stderr.close()
    result = subprocess.CompletedProcess(
        command, process.returncode, chunks["out"].decode(errors="replace"), chunks["err"].decode(errors="replace")
    )
    return result, usage.ru_maxrss / 1024
