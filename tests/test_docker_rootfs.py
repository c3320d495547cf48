"""The Docker group's base image is valid wherever the checkout lives (a clone under /tmp included)."""

import io
import tarfile

from docker_engine import base_rootfs


def test_image_has_each_directory_once_when_the_checkout_is_under_tmp():
    rootfs = base_rootfs({"appuser": 10001}, mount_points=["/tmp/pmsops ci/.venv", "/tmp/pmsops ci/src"], writable={"/data": 10001})

    names = [member.name for member in tarfile.open(fileobj=io.BytesIO(rootfs)).getmembers()]

    assert sorted(name for name in set(names) if names.count(name) > 1) == []
    members = {m.name: m for m in tarfile.open(fileobj=io.BytesIO(rootfs)).getmembers()}
    assert (members["tmp"].mode, members["tmp/pmsops ci/.venv"].mode, members["data"].uid) == (0o1777, 0o755, 10001)
