"""wqlab harness: boot Debian kernels with virtme-ng, drive the wqlab module, prove
workqueue behaviour from ftrace ``workqueue:*`` events.

Layers, bottom-up (a lower layer never imports a higher one):
``errors`` → ``kernels`` / ``build`` → ``vm`` (runner, console watch) → ``channel``
(guest agent requests) → ``client`` (module commands over debugfs or ioctl) →
``tracefs`` / ``trace`` / ``symbols`` → ``lifecycle`` / ``report`` → ``cli`` /
``pytest_plugin``.
"""

__version__ = "0.1.0"
