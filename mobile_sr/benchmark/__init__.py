"""Per-frame latency of .tflite models: on this host in LiteRT, and on Android phones over adb."""
