"""The folder job: planning, the output folder's lock, the manifest, the read-denoise-write pipeline, re-runs,
shards and Ray. It drives the engine (``denoise.runtime``) through ``job.engine.Engine``."""
