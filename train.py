"""Training stages (paper §4.3): `codec` (§3.1) and `ldm` (latent diffusion + prior + prompting, §3.2-§3.3).

Status: neither stage exists yet (issues [2] and [3] build them); this command says so and exits with code 2.
"""
import argparse
import sys

PLANNED = {"codec": "issue [2] (neural audio codec)", "ldm": "issue [3] (latent diffusion model)"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("stage", choices=sorted(PLANNED), help="which model to train")
    args, _ = ap.parse_known_args(argv)
    print(f"error: training stage {args.stage!r} is not implemented yet: it arrives with {PLANNED[args.stage]}",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
