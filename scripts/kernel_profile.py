"""Time per Burn kernel, summed by kernel name, from a CubeCL profiling log.

    CUBECL_DEBUG_LOG=prof.log CUBECL_DEBUG_OPTION=profile emolime bench --device gpu:0 ...
    python3 scripts/kernel_profile.py prof.log [--top 20]

With CUBECL_DEBUG_OPTION=profile, CubeCL times every kernel Burn launches (waiting for each, so
the sum exceeds an unprofiled run's time; the shares are what it tells) and writes a line
`| <duration> | <KernelName>_<hash>` per launch. emolime's own WGSL kernels (mel, perturb,
surrogate...) do not go through CubeCL: `emolime bench` times their stages itself.
"""

import argparse
import collections
import re

UNITS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}
LINE = re.compile(r"\|\s*([\d.]+)(ns|µs|us|ms|s)\s*\|\s*(\S+)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log")
    ap.add_argument("--top", type=int, default=20)
    a = ap.parse_args()
    total_ms, launches = collections.Counter(), collections.Counter()
    with open(a.log, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            name = re.sub(r"_[0-9a-f]{8}$", "", m.group(3))
            total_ms[name] += float(m.group(1)) * UNITS[m.group(2)]
            launches[name] += 1
    if not total_ms:
        raise SystemExit(f"{a.log}: no profiled kernels (was CUBECL_DEBUG_OPTION=profile set?)")
    whole = sum(total_ms.values())
    print(f"{'ms':>10} {'share':>6} {'launches':>8}  kernel")
    for name, ms in total_ms.most_common(a.top):
        print(f"{ms:10.1f} {ms / whole:6.1%} {launches[name]:8d}  {name}")
    print(f"{whole:10.1f} {1:6.0%} {sum(launches.values()):8d}  all kernels")


if __name__ == "__main__":
    main()
