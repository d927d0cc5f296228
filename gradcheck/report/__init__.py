"""Reports: the result of a check (``model``) and its renderings, pure functions of it: text and
Markdown (``text``), HTML (``html``), report files side by side (``files``)."""
