"""audio-control's service layer: relay decisions (``decisions``) and EAS messages
(``messages``: composing a decision's message, and operator origination)."""
