"""Trains the evaluator classifier on the Fashion-MNIST train split and reports test accuracy.

    python3 gpu-service/training/train_classifier.py --out runs/classifier

Writes <out>/classifier.pt (weights + test accuracy). export.py turns it into evaluator/classifier.onnx.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

import data
from classifier import Classifier
from train import pick_device, seed_everything


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--subset", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def augment(x):
    """Random horizontal flips and 2-pixel shifts: Fashion-MNIST items are left/right symmetric enough."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (2, 2, 2, 2), value=-1.0)
    dx, dy = torch.randint(0, 5, (2,)).tolist()
    return padded[:, :, dy:dy + 28, dx:dx + 28]


@torch.no_grad()
def accuracy(model, images, labels, batch=1000):
    model.eval()
    correct = 0
    for i in range(0, images.shape[0], batch):
        logits, _ = model(images[i:i + batch])
        correct += (logits.argmax(1) == labels[i:i + batch]).sum().item()
    return correct / images.shape[0]


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    device = pick_device(args.device)
    seed_everything(args.seed)
    train_x, train_y = (torch.from_numpy(a).to(device) for a in data.load_split("train", args.data_dir, args.subset))
    test_x, test_y = (torch.from_numpy(a).to(device) for a in data.load_split("test", args.data_dir, args.subset))
    model = Classifier().to(device)
    steps_per_epoch = (train_x.shape[0] + args.batch_size - 1) // args.batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(train_x.shape[0], device=device)
        for i in range(steps_per_epoch):
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            logits, _ = model(augment(train_x[idx]))
            loss = F.cross_entropy(logits, train_y[idx], label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        acc = accuracy(model, test_x, test_y)
        print(f"epoch {epoch + 1}/{args.epochs} loss {loss.item():.4f} test accuracy {acc:.4f} "
              f"elapsed {time.time() - start:.0f}s", flush=True)
    result = {"test_accuracy": acc, "epochs": args.epochs, "seconds": round(time.time() - start, 1),
              "device": str(device), "torch_version": str(torch.__version__)}
    torch.save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, **result},
               os.path.join(args.out, "classifier.pt"))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    try:
        main()
    except data.DatasetMissingError as error:
        sys.exit(f"error: {error}")
