"""wqlab harness: boot Debian kernels with virtme-ng, drive the wqlab module, prove
workqueue behaviour from ftrace ``workqueue:*`` events.

Layers, bottom-up (a lower layer never imports a higher one):
``errors`` / ``wait`` → ``kernels`` / ``resources`` (what the package ships, the cache) /
``build`` → ``vm`` (runner, console watch) → ``channel`` (guest agent requests) →
``ssh`` / ``serial_target`` / ``targets`` (machines wqlab did not boot) → ``client``
(module commands over debugfs, ioctl or netlink) → ``tracefs`` / ``trace`` / ``symbols``
→ ``lifecycle`` / ``report`` → ``cli`` / ``pytest_plugin``.
"""

__version__ = "0.1.0"
