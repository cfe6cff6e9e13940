"""Turns `pip config list` output (stdin) into a pip.conf for an image build (stdout).

Keeps the registry settings a build needs (index, proxy, timeouts, trusted hosts) and drops
what points at this machine's disk (file:// indexes, find-links, constraints) and the CA path
(the build passes PIP_CERT instead).
"""

import sys

KEPT = {"index-url", "extra-index-url", "trusted-host", "proxy", "timeout", "default-timeout",
        "retries"}


def main() -> None:
    print("[global]")
    for line in sys.stdin:
        key, _, value = line.strip().partition("=")
        option = key.rpartition(".")[2]
        value = value.strip("'\"")
        if option not in KEPT:
            continue
        values = [v for v in value.split() if not v.startswith("file:")]
        if values:
            print(f"{option} = {' '.join(values)}")


if __name__ == "__main__":
    main()
