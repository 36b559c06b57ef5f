"""How each model family is built and fed. These modules import torch and transformers."""
