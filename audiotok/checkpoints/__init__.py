"""Checkpoint files and conversion, below the family modules and above the codecs.

* :mod:`.io`: reading ``.pt``/``.ckpt`` (weights only unless trusted) and ``.safetensors`` files.
* :mod:`.convert`: what every official-checkpoint converter shares (the files given, key renaming,
  EnCodec codebook buffers, strict loading that names mismatches).
* :mod:`.formats`: the registry of official checkpoint formats (each family module registers its
  detectors) and ``detect`` / ``detect_and_convert``.
"""
