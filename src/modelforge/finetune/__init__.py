"""Fine-tuning and transfer learning: start from other weights (`init_from`), freeze layers,
LoRA adapters (saved apart from the base weights, mergeable for export)."""
