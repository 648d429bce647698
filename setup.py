"""pera-mm: PerA remote-sensing pretraining for the OpenMMLab ecosystem."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_version():
    text = (HERE / 'pera_mm' / 'version.py').read_text()
    return re.search(r"__version__ = '([^']+)'", text).group(1)


def read_requirements(name):
    lines = (HERE / 'requirements' / name).read_text().splitlines()
    return [ln.split('#')[0].strip() for ln in lines if ln.split('#')[0].strip()]


setup(
    name='pera-mm',
    version=read_version(),
    description='PerA self-supervised pretraining of remote-sensing ViT backbones '
    'as an OpenMMLab (MMEngine / MMPretrain) plugin',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'benchmarks')),
    python_requires='>=3.8',
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'mim': read_requirements('mminstall.txt'),
        'tests': read_requirements('tests.txt'),
        'lint': read_requirements('lint.txt'),
        'optional': read_requirements('optional.txt'),
    },
    license='Apache-2.0',
    zip_safe=False,
)
