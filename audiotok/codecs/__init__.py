"""Codec models: tensors in, tensors out. Knows nothing of files, Lightning or teachers."""
from .codec import Codec, CodecConfig, CodecOutput
from .families import REGISTRY, available, build_codec, get_config

__all__ = ["Codec", "CodecConfig", "CodecOutput", "REGISTRY", "available", "build_codec", "get_config"]
