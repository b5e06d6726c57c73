import * as React from 'react';

import { sparklinePoints } from '../models/gpuHistory';

/** A short history plot of values in [0, 1]. */
export function Sparkline(props: {
  values: (number | null)[];
  label: string;
  width?: number;
  height?: number;
}): JSX.Element {
  const width = props.width ?? 120;
  const height = props.height ?? 24;
  return (
    <svg className="jp-ds01-sparkline" width={width} height={height} role="img" aria-label={props.label}>
      <title>{props.label}</title>
      <polyline points={sparklinePoints(props.values, width, height)} />
    </svg>
  );
}
