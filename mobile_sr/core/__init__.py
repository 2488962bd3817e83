"""Task-independent building blocks: the TensorFlow/Keras import, errors, images, safe file writing, plots."""
