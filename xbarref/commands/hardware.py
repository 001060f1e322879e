"""``xbarref hardware``: write a commented hardware configuration (TOML)."""

from __future__ import annotations


def register(subparsers):
    """Add ``hardware`` to the ``xbarref`` parser."""
    from xbarref.config import PRESETS

    p = subparsers.add_parser(
        "hardware",
        help="write a commented hardware configuration file (TOML)",
        description="Write the hardware configuration of a preset as a commented TOML file "
                    "(edit it, then pass it to `xbarref infer --hardware`).",
    )
    p.add_argument("--preset", default="default", choices=sorted(PRESETS),
                   help="preset to write (docs/hardware.md lists what each sets)")
    p.add_argument("-o", "--output", required=True, metavar="HW.toml",
                   help="output file; '-' writes to standard output")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file (only a regular file)")
    p.set_defaults(func=cmd_hardware)


def cmd_hardware(args):
    """``xbarref hardware``: write a preset as a commented TOML file."""
    import sys

    from xbarref.config import dumps_hardware, preset, save_hardware

    hw = preset(args.preset)
    if args.output == "-":
        sys.stdout.write(dumps_hardware(hw))
        return 0
    save_hardware(hw, args.output, overwrite=args.overwrite, name="--output")
    print(f"wrote {args.output} (preset {args.preset})")
    return 0
