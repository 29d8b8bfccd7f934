"""Zero-shot synthesis (paper §4.3, §5): text + a few seconds of a voice -> speech in that voice.

Status: not implemented yet (issue [4] builds it on the codec of [2] and the diffusion model of [3]); this command
says so and exits with code 2.
"""
import argparse
import sys


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.parse_known_args(argv)
    print("error: sample.py is not implemented yet: it needs the codec (issue [2]) and the diffusion model "
          "(issue [3]); see README 'Status'", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
