"""Where datasets live (the embedded default photos, named sets in the shared datasets folder,
user folders) and feeding a task's training patches through ``tf.data``. What a task reads from
a dataset is the task's own (``mobile_sr.tasks.sr.data``, ``mobile_sr.tasks.hdr.data``)."""

from mobile_sr.data.locations import resolve_dataset, shared_datasets_dir

__all__ = ["resolve_dataset", "shared_datasets_dir"]
