#!/bin/bash
# After run C reaches its last step: scoring, shipping, and every measurement that goes with it, one CPU job at a time.
# Usage: runs/q11/ship.sh STEP   (runs/q11/C320/last.pt must be at STEP). Logs in runs/q11/ship/.
set -ex
cd /work/main
P=.venv/bin/python; S=${1:?step}; O=runs/q11; L=$O/ship; mkdir -p $L
git show 8d4675c:checkpoints/toy/ldm.pt > $O/B12000.pt        # the model shipped before (B, 12,000 steps, 256 voices)
git show 8d4675c:checkpoints/toy/codec.pt > $O/codec_stock.pt
$P train.py export --ckpt $O/C320/last.pt --out $O/C$S.pt
$P -m evaluation.metrics history --ckpt $O/C320/last.pt --out $O/ldm_validation.png > $L/history.txt 2>&1
$P -m evaluation.demo --stage tts --per-voice 7 --out $O/evalC$S --ldm "C $S=$O/C$S.pt" --ldm "B 12000=$O/B12000.pt" > $L/tuning.txt 2>&1
$P -m evaluation.demo --stage tts --per-voice 7 --split confirm --out $O/confirmC$S --ldm "C $S=$O/C$S.pt" --ldm "B 12000=$O/B12000.pt" > $L/confirm.txt 2>&1
# ship
cp $O/codec_ft.pt checkpoints/toy/codec.pt
$P train.py export --ckpt $O/C320/last.pt --out checkpoints/toy/ldm.pt --codec checkpoints/toy/codec.pt
$P -m corpus.data encode --codec checkpoints/toy/codec.pt --data data/toy > $L/encode.txt 2>&1
$P $O/measure_shipped.py > $L/measure_shipped.txt 2>&1
$P -m evaluation.metrics predictors --ckpt checkpoints/toy/ldm.pt --data data/toy --split valid > $L/pred_valid.txt 2>&1
$P -m evaluation.metrics predictors --ckpt checkpoints/toy/ldm.pt --data data/toy --split test > $L/pred_test.txt 2>&1
$P -m evaluation.metrics attention --ckpt checkpoints/toy/ldm.pt --out $O/att.png > $L/attention.txt 2>&1
for t in invert vc se sing pitch-from; do
  /usr/bin/time -f "%e s" $P -m evaluation.demo_section5 $t --data data/toy --out $O/s5_$t > $L/s5_$t.txt 2>&1
done
echo "ship.sh done"
