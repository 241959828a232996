"""ExecuTorch export: wrap -> quantize -> torch.export -> lower to delegates -> .pte."""
