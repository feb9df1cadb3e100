import torch

# Two cores on the CI machine: keep each test process to one intra-op thread so parallel
# workers do not fight; tests that time things set threads themselves.
torch.set_num_threads(1)
