"""The feature extractors behind the two towers: small ones built from a config
(:mod:`.small`), torchvision / timm image models (:mod:`.vision`) and Hugging Face text models
(:mod:`.text`), all loaded from local files only."""
