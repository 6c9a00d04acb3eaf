"""Write a PNG quicklook of an estimate raster.

    python scripts/quicklook.py ESTIMATE.tif OUT.png [--image SCENE.tif]
"""
from __future__ import annotations

import argparse

from _bootstrap import import_plugin_package

import_plugin_package()
from poverty_mapper.core.maps.quicklook import write_quicklook  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("estimate")
    parser.add_argument("png")
    parser.add_argument("--image", help="the scene the estimate was made from, shown beside it")
    args = parser.parse_args()
    write_quicklook(args.estimate, args.png, args.image)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
