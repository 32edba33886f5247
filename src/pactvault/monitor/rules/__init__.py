"""Detection rules: what they watch in the audit journal (``catalog``), how each organisation
tunes them (``settings``), and how journal events become observations (``observe``).

The engine that reads the journal and acts is ``pactvault.monitor.detection``.
"""
