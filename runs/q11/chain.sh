#!/bin/bash
# After the codec fine-tune: export, encode both corpora, then the LDM run C and its snapshots.
cd /work/main
while pgrep -f "train.py codec" >/dev/null; do sleep 20; done
P=.venv/bin/python
$P train.py export --ckpt runs/q11/codec_ft/last.pt --out runs/q11/codec_ft.pt
$P -m corpus.data encode --codec runs/q11/codec_ft.pt --data data/toy320 > runs/q11/enc320.log 2>&1
nohup runs/q11/snap.sh >/dev/null 2>&1 &
$P train.py ldm --config toy --data data/toy320 --codec runs/q11/codec_ft.pt --out runs/q11/C320 \
  --prior.pitch_bins=256 --steps=20000 --threads 2 > runs/q11/C320.log 2>&1
