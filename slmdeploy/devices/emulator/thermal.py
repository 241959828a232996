"""A simple heating model so telemetry sampling and throttle detection can be tested.

The SoC temperature follows dT/dt = heat * busy_cpus - (T - ambient) / tau, where
busy_cpus is the CPU time the phone's commands really used. Each thermal zone sees
its coupling share of the rise. Above ``trip_c`` the cpufreq caps drop to
``throttle_ratio`` of max (and recover below ``trip_c - hysteresis_c``), the way a
thermal governor lowers scaling_max_freq; scaling_cur_freq is the cap while busy
and the minimum while idle.
"""

from __future__ import annotations

import logging
import threading
import time

from slmdeploy.devices.emulator.processes import ProcessTable
from slmdeploy.devices.emulator.profiles import Profile
from slmdeploy.devices.emulator.sandbox import Sandbox

log = logging.getLogger(__name__)

BUSY_THRESHOLD = 0.05  # CPUs of load below which the cores idle at their minimum


class ThermalModel:
    """Updates the sandbox's thermal, cpufreq and battery files in the background."""

    def __init__(self, profile: Profile, sandbox: Sandbox, processes: ProcessTable,
                 interval_s: float = 0.2) -> None:
        self.profile = profile
        self.sandbox = sandbox
        self.processes = processes
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._temp_c = profile.thermal.ambient_c
        self._throttled = False
        self._busy = 0.0
        self._written: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def temperature_c(self) -> float:
        with self._lock:
            return self._temp_c

    @property
    def throttled(self) -> bool:
        with self._lock:
            return self._throttled

    @property
    def busy_cpus(self) -> float:
        with self._lock:
            return self._busy

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="phone-thermal", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def reset(self) -> None:
        """Back to ambient (a rebooted, cooled-down phone)."""
        with self._lock:
            self._temp_c = self.profile.thermal.ambient_c
            self._throttled = False
            self._busy = 0.0
        self._write_files()

    def step(self, dt: float, busy_cpus: float) -> None:
        """Advance the model by ``dt`` seconds of ``busy_cpus`` load and rewrite the files."""
        p = self.profile.thermal
        with self._lock:
            self._busy = min(busy_cpus, float(self.profile.cpu_count))
            rise = p.heat_c_per_cpu_s * self._busy - (self._temp_c - p.ambient_c) / p.cooling_tau_s
            self._temp_c += rise * dt
            if self._temp_c >= p.trip_c:
                self._throttled = True
            elif self._temp_c < p.trip_c - p.hysteresis_c:
                self._throttled = False
        self._write_files()

    def _run(self) -> None:
        last = time.monotonic()
        self.processes.cpu_busy(self.interval_s)  # sets the baseline
        while not self._stop.wait(self.interval_s):
            now = time.monotonic()
            dt, last = now - last, now
            try:
                self.step(dt, self.processes.cpu_busy(dt))
            except Exception:  # keep the model running; a missed tick is harmless
                log.exception("thermal update failed")

    def _write_files(self) -> None:
        p = self.profile.thermal
        with self._lock:
            temp, throttled, busy = self._temp_c, self._throttled, self._busy
        files: dict[str, str] = {}
        rise = temp - p.ambient_c
        for i, zone in enumerate(self.profile.thermal_zones):
            files[f"sys/class/thermal/thermal_zone{i}/temp"] = str(round((p.ambient_c + zone.coupling * rise) * 1000))
        for cpu, cluster in self.profile.cores():
            cap = round(cluster.max_khz * p.throttle_ratio / 1000) * 1000 if throttled else cluster.max_khz
            base = f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
            files[f"{base}/scaling_max_freq"] = str(cap)
            files[f"{base}/scaling_cur_freq"] = str(cap if busy > BUSY_THRESHOLD else cluster.min_khz)
        # what thermalservice reports: moderate (2) while the governor caps the cores
        files["system/thermal_status"] = "2" if throttled else "0"
        battery = self.profile.battery
        if battery is not None:
            files["sys/class/power_supply/battery/temp"] = str(round(battery.temp_dc + 2 * rise))
            files["sys/class/power_supply/battery/current_now"] = str(round(battery.current_now_ua * (1 + 0.4 * busy)))
        for rel, value in files.items():
            if self._written.get(rel) != value:
                self.sandbox.write_state(rel, value + "\n")
                self._written[rel] = value
