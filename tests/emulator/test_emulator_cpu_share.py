"""A slower phone: with cpu_share every command the phone runs (and its children) sits in one
cgroup whose CPU bandwidth is that share of a host core; the group goes when the phone stops."""

from __future__ import annotations

from pathlib import Path

from slmdeploy.devices.emulator import EmulatedPhone


def test_every_command_and_its_children_share_the_phones_cpu_quota(tmp_path):
    with EmulatedPhone("pixel8", root=tmp_path / "phone", cpu_share=0.25) as phone:
        group = phone.cpu_share.path
        if phone.cpu_share.version == "v2":
            assert (group / "cpu.max").read_text().split() == ["25000", "100000"]
        else:
            assert (group / "cpu.cfs_quota_us").read_text().strip() == "25000"
            assert (group / "cpu.cfs_period_us").read_text().strip() == "100000"
        # a grandchild of the command (sh -> sh -> cat) reports the phone's group as its own
        seen = phone.run("sh -c 'cat /proc/self/cgroup'").stdout
        assert any(line.split(":", 2)[2] == "/" + group.name for line in seen.splitlines()
                   if line.split(":")[1] in ("cpu", "cpu,cpuacct", "")), seen
    assert not Path(group).exists()  # removed with the phone


def test_without_a_share_commands_stay_in_the_hosts_group(tmp_path):
    with EmulatedPhone("pixel8", root=tmp_path / "phone") as phone:
        assert phone.cpu_share is None
        assert "slmdeploy-" not in phone.run("cat /proc/self/cgroup").stdout
