"""Evaluation: PSNR and SSIM as reported in super-resolution tables."""
