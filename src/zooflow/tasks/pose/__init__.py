"""Chapter 4: multi-person pose estimation (OpenPose) on the COCO keypoints format, measured with OKS AP."""
