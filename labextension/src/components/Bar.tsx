import * as React from 'react';

/** A labelled horizontal bar (utilisation, memory, limits), readable by screen readers. */
export function Bar(props: { label: string; value: number; max: number; text?: string; testId?: string }): JSX.Element {
  const { label, value, max, text } = props;
  const ratio = max > 0 ? Math.max(0, Math.min(1, value / max)) : 0;
  const level = ratio >= 0.9 ? 'jp-ds01-bar-high' : ratio >= 0.7 ? 'jp-ds01-bar-mid' : '';
  return (
    <div className="jp-ds01-bar-row" data-test-id={props.testId}>
      <span className="jp-ds01-bar-label">{label}</span>
      <div
        className={`jp-ds01-bar ${level}`}
        role="meter"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={max}
        aria-valuenow={value}
        aria-valuetext={text}
      >
        <div className="jp-ds01-bar-fill" style={{ width: `${(ratio * 100).toFixed(1)}%` }} />
      </div>
      <span className="jp-ds01-bar-text">{text ?? `${Math.round(ratio * 100)}%`}</span>
    </div>
  );
}
