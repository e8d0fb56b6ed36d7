"""Packaging for paddleseg-lpsnet: a PaddleSeg plugin and model zoo for LPS-Net."""
from setuptools import find_packages, setup

# The stack the project is tested on. These were verified to install together on a
# fresh Python 3.11 with `pip check` clean. GPU users replace paddlepaddle by the
# paddlepaddle-gpu wheel that matches their CUDA (same version).
INSTALL_REQUIRES = [
    "paddlepaddle==3.3.1",
    "paddleseg==2.8.0",
    "paddleclas==2.6.0",
    "visualdl==2.5.3",
    "numpy==1.24.4",            # paddleclas 2.6.0 pins it
    "opencv-python==4.5.5.64",  # paddleseg 2.8.0 caps opencv below 4.6
    "pyyaml>=6.0",
    "tqdm>=4.66",
    "cityscapesscripts==2.3.0",
    "paddle2onnx==2.1.0",
    "onnx==1.17.0",
    "onnxruntime==1.32.0",
    "onnx_graphsurgeon==0.6.1",  # paddle2onnx's polygraphy folding pip-installs it at run time otherwise
    "ml_dtypes==0.4.1",        # onnxruntime.quantization needs it; 0.5+ wants numpy 2
]

setup(
    name="paddleseg-lpsnet",
    version="0.1.0",
    description="LPS-Net and other lightweight real-time segmentation models for PaddleSeg",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9,<3.13",
    packages=find_packages(include=["paddleseg_lpsnet", "paddleseg_lpsnet.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={
        # Reading the authors' PyTorch checkpoints (.pth) in `lpsnet convert`.
        "torch": ["torch>=2.1"],
        "test": ["pytest>=8.0"],
    },
    entry_points={"console_scripts": ["lpsnet=paddleseg_lpsnet.cli:main"]},
    license="Apache-2.0",
)
