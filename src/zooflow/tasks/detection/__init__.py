"""Chapter 2: object detection (SSD) on the Pascal VOC format."""
