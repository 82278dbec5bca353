"""The hand-written baseline: what a user would write with ONNX Runtime and OpenCV alone.

Same fp32 model and labels as ``fixres-edge classify``, same geometry (short side to
int(224 / 0.875), center crop 224, INTER_LINEAR: no antialias) and the model card's
TF-style normalization (x - 127) / 128.

    python bench/baseline_ort_opencv.py PHOTO [--threads N]
"""
import argparse
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

MODELS = Path(__file__).resolve().parents[1] / "models"

parser = argparse.ArgumentParser()
parser.add_argument("photo")
parser.add_argument("--threads", type=int, default=1)
args = parser.parse_args()

options = ort.SessionOptions()
options.intra_op_num_threads = args.threads
session = ort.InferenceSession(str(MODELS / "efficientnet_lite0.onnx"), options, providers=["CPUExecutionProvider"])
labels = (MODELS / "imagenet_labels.txt").read_text().splitlines()

image = cv2.imread(args.photo)
h, w = image.shape[:2]
short = int(224 / 0.875)  # torchvision's Resize(256): short side 256, long side in proportion
new_w, new_h = (int(short * w / h), short) if h <= w else (short, int(short * h / w))
image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
top, left = round((new_h - 224) / 2), round((new_w - 224) / 2)
crop = image[top:top + 224, left:left + 224]
blob = cv2.dnn.blobFromImage(crop, scalefactor=1 / 128, mean=(127, 127, 127), swapRB=True)

logits = session.run(None, {session.get_inputs()[0].name: blob})[0][0]
probs = np.exp(logits - logits.max())
probs /= probs.sum()
for i in np.argsort(probs)[::-1][:5]:
    print(f"{labels[i]}\t{probs[i]:.4f}")
