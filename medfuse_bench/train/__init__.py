"""Training: the experiment table, the image cache, sample sets and batches, augmentation, the training loop,
model selection, test-set predictions and the throughput benchmark (see docs/models.md)."""
