"""Chapter 3: semantic segmentation on the Pascal VOC format, measured with mIoU."""
