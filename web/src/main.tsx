import { render } from 'preact';
import { Dashboard } from './components/dashboard.js';
import './styles.css';

render(<Dashboard />, document.getElementById('app')!);
