"""Fine-tune ResNet-101 for image classification on a folder of images and share it on the Hugging Face Hub."""

__version__ = "0.1.0"

__all__ = ["__version__"]
