/** The section map: the plot grid as an SVG, coloured by status. Pure, so it is cheap to test. */
import { gzipPrefixOf, gzipWithTail, type GzipPrefix } from './gzip-prefix';

export type PlotStatus = 'available' | 'reserved' | 'occupied';
export const PLOT_STATUSES: readonly PlotStatus[] = ['available', 'reserved', 'occupied'];

export type MapPlot = {
  id: number;
  row: number;
  number: number;
  status: PlotStatus;
  deceasedName: string | null;
  birthDate: string | null;
  deathDate: string | null;
};

export type MapSection = { id: number; name: string; plots: readonly MapPlot[] };

const CELL = 28;
const GAP = 4;
const MARGIN = 40;
const LEGEND_HEIGHT = 36;
const COLOURS: Record<PlotStatus, string> = { available: '#8bc34a', reserved: '#ffc107', occupied: '#795548' };

const XML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };
export const escapeXml = (text: string): string => text.replace(/[&<>"']/g, (ch) => XML_ESCAPES[ch]);

function describe(plot: MapPlot): string {
  const place = `Row ${plot.row}, plot ${plot.number}: ${plot.status}`;
  if (!plot.deceasedName) return place;
  const years = `${plot.birthDate ? plot.birthDate.slice(0, 4) : '?'}–${plot.deathDate ? plot.deathDate.slice(0, 4) : '?'}`;
  return `${place}, ${plot.deceasedName} (${years})`;
}

/**
 * A section's map without the per-request part, rendered once per map version
 * and cached: the document up to its closing tag, and that prefix already
 * gzipped (a large section's map is megabytes; a request gzips only its own tail).
 */
export type MapTemplate = { prefix: Buffer; gzipPrefix: GzipPrefix };

const CLOSE = Buffer.from('</svg>');

const HIGHLIGHT_STYLE = 'stroke:#d50000;stroke-width:3';

export function renderMapTemplate(section: MapSection): MapTemplate {
  let rows = 0;
  let cols = 0;
  const counts: Record<PlotStatus, number> = { available: 0, reserved: 0, occupied: 0 };
  for (const plot of section.plots) {
    if (plot.row > rows) rows = plot.row;
    if (plot.number > cols) cols = plot.number;
    counts[plot.status] += 1;
  }
  const width = MARGIN + cols * (CELL + GAP) + GAP;
  const height = LEGEND_HEIGHT + MARGIN + rows * (CELL + GAP) + GAP;
  const title = `Section ${section.name}: ${section.plots.length} plots`;

  const head = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-labelledby="map-title">`,
    `<title id="map-title">${escapeXml(title)}</title>`,
    `<style>text{font:10px sans-serif;fill:#212121}.n{text-anchor:middle;fill:#fff}</style>`,
    '',
  ];
  const body: string[] = [];
  // Legend with live counts.
  PLOT_STATUSES.forEach((status, i) => {
    const x = MARGIN + i * 130;
    body.push(
      `<rect x="${x}" y="10" width="14" height="14" fill="${COLOURS[status]}"/>`,
      `<text x="${x + 20}" y="21">${status} (${counts[status]})</text>`,
    );
  });
  for (let r = 1; r <= rows; r++) {
    body.push(`<text x="8" y="${LEGEND_HEIGHT + MARGIN + (r - 1) * (CELL + GAP) + CELL / 2 + GAP}">R${r}</text>`);
  }
  for (let c = 1; c <= cols; c++) {
    body.push(`<text class="n" style="fill:#212121" x="${MARGIN + (c - 1) * (CELL + GAP) + GAP + CELL / 2}" y="${LEGEND_HEIGHT + MARGIN - 8}">${c}</text>`);
  }
  for (const plot of section.plots) {
    const x = MARGIN + (plot.number - 1) * (CELL + GAP) + GAP;
    const y = LEGEND_HEIGHT + MARGIN + (plot.row - 1) * (CELL + GAP) + GAP;
    body.push(
      `<g id="plot-${plot.id}" data-status="${plot.status}">`,
      `<rect x="${x}" y="${y}" width="${CELL}" height="${CELL}" rx="3" fill="${COLOURS[plot.status]}"/>`,
      `<text class="n" x="${x + CELL / 2}" y="${y + CELL / 2 + 3}">${plot.number}</text>`,
      `<title>${escapeXml(describe(plot))}</title></g>`,
    );
  }
  body.push('');
  const prefix = Buffer.from(`${head.join('\n')}${body.join('\n')}`);
  return { prefix, gzipPrefix: gzipPrefixOf(prefix) };
}

/**
 * One response's own part: a rule that outlines the highlighted plot (the
 * "you are here" of a visitor's map), and the closing tag. A style sheet
 * applies to the whole document wherever it stands, so it can come last.
 */
const tailOf = (highlightPlotId?: number) =>
  highlightPlotId === undefined ? CLOSE : Buffer.from(`<style>#plot-${highlightPlotId}>rect{${HIGHLIGHT_STYLE}}</style>\n</svg>`);

export const assembleMap = (template: MapTemplate, highlightPlotId?: number): Buffer => Buffer.concat([template.prefix, tailOf(highlightPlotId)]);

/** The same document gzipped: the cached compressed prefix, and only the tail compressed per request. */
export const assembleMapGzip = (template: MapTemplate, highlightPlotId?: number): Buffer => gzipWithTail(template.gzipPrefix, tailOf(highlightPlotId));

export const renderSectionMap = (section: MapSection, highlightPlotId?: number): string =>
  assembleMap(renderMapTemplate(section), highlightPlotId).toString('utf8');
