"""Finding this process's control-group folders, v1 and v2, from /proc/self/cgroup's lines."""

from pathlib import Path

from landscape.machine import cgroup


def test_v2_gives_the_folder_and_its_ancestors_innermost_first(tmp_path):
    got = cgroup.folders("memory", tmp_path, ["0::/slurm/job7/step0"])
    assert got == [(tmp_path / "slurm/job7/step0", True), (tmp_path / "slurm/job7", True),
                   (tmp_path / "slurm", True), (tmp_path, True)]  # fmt: skip


def test_v1_takes_the_controllers_own_hierarchy_only(tmp_path):
    lines = ["5:cpu,cpuacct:/docker/abc", "4:memory:/docker/abc", "1:name=systemd:/init.scope"]
    assert cgroup.folders("cpu", tmp_path, lines) == [
        (tmp_path / "cpu,cpuacct/docker/abc", False),
        (tmp_path / "cpu,cpuacct/docker", False),
        (tmp_path / "cpu,cpuacct", False),
    ]
    assert [p for p, _ in cgroup.folders("memory", tmp_path, lines)][0] == tmp_path / "memory/docker/abc"
    assert cgroup.folders("pids", tmp_path, lines) == []


def test_the_root_group_and_an_unreadable_file(tmp_path, monkeypatch):
    assert cgroup.folders("cpu", tmp_path, ["0::/"]) == [(tmp_path, True)]
    monkeypatch.setattr(Path, "read_text", lambda self: (_ for _ in ()).throw(OSError("no /proc")))
    assert cgroup.folders("cpu", tmp_path) == []
