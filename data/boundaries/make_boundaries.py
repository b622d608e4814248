"""Write the committed demo boundary files for the hengqin and nansha scales.

Usage (from the repository root): ``python data/boundaries/make_boundaries.py [--seed 2024]``.
Writes ``<scale>_admin_units.geojson`` and ``<scale>_grids.geojson`` next to this script, in
EPSG:4326 with 7 coordinate decimals, and prints each file's size and feature count.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if __package__ in (None, ""):  # run as a script from a checkout without an installed package
    sys.path.insert(0, str(HERE.parents[1]))

from gridgis.demo.territory import build_territory  # noqa: E402

FILE_SCALES = ("hengqin", "nansha")
MAX_FILE_BYTES = 1_500_000


def write_boundaries(out_dir: Path, seed: int) -> list[Path]:
    """Build each file scale and write its admin units and grids as GeoJSON; return the paths."""
    written = []
    for scale in FILE_SCALES:
        started = time.perf_counter()
        admin, grids = build_territory(scale, seed=seed)
        elapsed = time.perf_counter() - started
        for suffix, frame in (("admin_units", admin), ("grids", grids)):
            path = out_dir / f"{scale}_{suffix}.geojson"
            path.unlink(missing_ok=True)
            frame.to_file(path, driver="GeoJSON", engine="pyogrio")
            size = path.stat().st_size
            print(f"{path.name}: {len(frame)} features, {size / 1e6:.2f} MB ({elapsed:.1f} s)")
            if size > MAX_FILE_BYTES:
                raise SystemExit(f"{path.name} is larger than {MAX_FILE_BYTES} bytes")
            written.append(path)
    return written


def main() -> None:
    """Parse the command line and write the files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2024, help="generator seed (default 2024)")
    parser.add_argument("--out-dir", type=Path, default=HERE, help="output folder")
    args = parser.parse_args()
    write_boundaries(args.out_dir, args.seed)


if __name__ == "__main__":
    main()
