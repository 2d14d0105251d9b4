"""The evaluator's network: a small Fashion-MNIST CNN whose penultimate activations are the feature space
for the Frechet distance (FD, Heusel et al. 2017, with this classifier in place of Inception)."""
import torch
from torch import nn
import torch.nn.functional as F

FEATURE_DIM = 128


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                    nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                                    nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2))
        self.embed = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 7 * 7, FEATURE_DIM), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURE_DIM, 10))

    def forward(self, image):
        """image [B, 1, 28, 28] in [-1, 1] -> (logits [B, 10], features [B, 128])."""
        features = self.embed(self.block2(self.block1(image)))
        return self.head(features), features
