"""Helpers shared by the Python tests that drive the mae binary: a pass/fail tally, running a
subcommand, and telling a clean error exit from a crash or a sanitizer report."""
import re
import subprocess


class Checks:
    def __init__(self):
        self.failed = 0
        self.passed = 0

    def ok(self, cond, what):
        if cond:
            self.passed += 1
            print(f"ok   {what}")
        else:
            self.failed += 1
            print(f"FAIL {what}")
        return cond


def run(mae, command, args, timeout=300):
    """`mae COMMAND ARGS...` -> (CompletedProcess, the command line as text)."""
    cmd = [mae, command] + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return r, " ".join(cmd)


def crashed(r):
    """A signal, an abort, or a sanitizer report: never a clean error exit."""
    sig = re.search(r"Segmentation|internal error|Sanitizer|runtime error:|Assertion|Aborted",
                    r.stderr)
    return r.returncode >= 128 or r.returncode < 0 or sig is not None
