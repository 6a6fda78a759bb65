"""Real image generation: the shipped text-to-image model, its judge, and cooperative denoising."""
